#!/usr/bin/env python3
"""Writes the inputs of the two batch-size fixtures, which are too big to write by hand.

    python3 crates/core/tests/plans/gen/batches.py
    MATTERSYNC_BLESS=1 cargo test -p mattersync-core --test golden

The fixtures are written with "expected": null; blessing fills in the plan (review it).
"""
import json
from pathlib import Path

PLANS = Path(__file__).resolve().parent.parent
TEAM = {"id": "t-rl", "name": "rocky-linux"}


def fixture(name, about, group, names, *, in_team, channel=None):
    target = {"kind": "team", "team": TEAM["name"]}
    channels = {}
    if channel:
        target = {"kind": "channel", "team": TEAM["name"], "channel": channel}
        channels[f"{TEAM['name']}/{channel}"] = {
            "id": f"c-{channel}",
            "team": TEAM["name"],
            "name": channel,
            "members": {},
        }
    members = {f"u-{n}": {"scheme_admin": False} for n in names} if in_team else {}
    fx = {
        "about": about,
        "directory": {
            "users": {n: {"uid": n} for n in names},
            "groups": {group: {"id": f"g-{group}", "cn": group, "member_users": names}},
        },
        "mattermost": {
            "users": {f"u-{n}": {"id": f"u-{n}", "username": n} for n in names},
            "teams": {TEAM["name"]: {**TEAM, "members": members}},
            "channels": channels,
        },
        # About batching, not the guards: a first sync this big is past the addition guard.
        "policy": {
            "links": [{"group": group, "target": target}],
            "guards": {"max_additions": 100000},
        },
        "expected": None,
    }
    (PLANS / f"{name}.json").write_text(json.dumps(fx, indent=2) + "\n")


fixture(
    "45-team-adds-are-batched-by-256",
    "Adding 257 users to a team takes two team actions, of 256 and 1 users.",
    "mm_rl_all",
    [f"user{i:03}" for i in range(257)],
    in_team=False,
)
fixture(
    "46-channel-adds-are-batched-by-1000",
    "Adding 1001 users to a channel takes two channel actions, of 1000 and 1 users (all are in the team already).",
    "mm_rl_infra",
    [f"user{i:04}" for i in range(1001)],
    in_team=True,
    channel="infra",
)
