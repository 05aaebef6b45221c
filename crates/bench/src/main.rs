//! `mattersync-bench`: measures mattersync on the real benchmark servers against the raw
//! floor the REST API sets, per world size, and prints tables (BENCHMARKS.md says how to
//! read them). Needs the benchmark servers (`scripts/bench/`), never runs in the test suite.
//!
//! Per size, in one run: prepare the world (cached), then
//!   * cold: Mattermost restored to accounts/teams/channels without memberships, empty
//!     ledger: the floor adds everything, restore, mattersync adds everything;
//!   * warm: nothing to do; after one unmeasured warm-up of each, the floors (one per
//!     `--floors` requests in flight), mattersync and the `--baseline` build take turns
//!     (ABAB…) `--repeats` times; median and min–max of each;
//!   * mass change: a directory change that adds N memberships; floor, restore, mattersync;
//!   * propagation (`--propagation`): a seeded mix of single changes through
//!     `mattersync serve` (and the baseline's serve, from the same snapshot).

mod child;
mod dirfloor;
mod floor;
mod mix;
mod propagation;
mod report;
mod world;

use anyhow::{bail, Context, Result};
use clap::Parser;
use report::{Measured, SizeResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use world::{Expected, Stats};

#[derive(Parser)]
#[command(
    name = "mattersync-bench",
    about = "mattersync against the raw REST floor, on the benchmark servers"
)]
struct Args {
    /// World sizes to measure: S (≈1k users), M (≈20k), L (≈50k).
    #[arg(long, value_delimiter = ',', default_value = "S")]
    sizes: Vec<String>,
    /// Sizes whose cold run really adds everything (floor and mattersync); at the others the
    /// cold run is planned only (`mattersync plan` and the floor's reads, writes counted from
    /// the batches). Default: S and M.
    #[arg(long, value_delimiter = ',', default_value = "S,M")]
    cold: Vec<String>,
    /// Warm runs of each (floors, mattersync, baseline), taking turns after one warm-up
    /// each; the median and min–max are reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// The floors measured: requests in flight of each (1 = the sequential floor).
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    floors: Vec<usize>,
    /// Another mattersync build measured in the same run, in turn with this one (warm runs
    /// and propagation), e.g. the commit before a change.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// What the baseline is, for the report.
    #[arg(long, default_value = "baseline")]
    baseline_label: String,
    /// Seed of the propagation mix's shuffle.
    #[arg(long, default_value_t = 15)]
    seed: u64,
    /// Skip the mass change.
    #[arg(long)]
    no_mass: bool,
    /// Measure single-change propagation through `mattersync serve` (this many changes).
    #[arg(long, default_value_t = 0)]
    propagation: usize,
    /// Use the loaded servers as they are (no generate/load step).
    #[arg(long)]
    skip_prepare: bool,
    /// The mattersync binary (default: next to this one).
    #[arg(long)]
    mattersync: Option<PathBuf>,
    /// What the mattersync binary is, for the report (e.g. the commit it was built from).
    #[arg(long, default_value = "")]
    label: String,
    /// The repository (default: where this crate was built from).
    #[arg(long)]
    repo: Option<PathBuf>,
}

/// Where things are.
pub struct Ctx {
    pub repo: PathBuf,
    pub bench: PathBuf,
    pub mattersync: PathBuf,
    pub mm_url: String,
    pub token: String,
    pub token_file: String,
    pub ldap_url: String,
    pub ldap_bind_dn: String,
    pub ldap_password_file: String,
    pub ldap_password: String,
    pub base_dn: String,
}

fn env_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{} (are the benchmark servers up?)", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect())
}

fn script(ctx: &Ctx, args: &[&str]) -> Result<String> {
    let t = Instant::now();
    let out = Command::new(ctx.repo.join(args[0]))
        .args(&args[1..])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!("{} failed ({})", args.join(" "), out.status);
    }
    eprintln!(
        "bench: {} ({:.1}s)",
        args.join(" "),
        t.elapsed().as_secs_f64()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn restore(ctx: &Ctx, template: &str) -> Result<()> {
    script(ctx, &["scripts/bench/mm.sh", "restore", template]).map(|_| ())
}

fn config(ctx: &Ctx, world: &Path, run: &Path) -> Result<PathBuf> {
    let links = std::fs::read_to_string(world.join("links.toml"))?;
    let text = format!(
        r#"# written by mattersync-bench
[directory]
kind = "ldap"
uri = "{ldap}"
bind_dn = "{bind}"
bind_password_file = "{pw}"
base_dn = "{base}"
timeout_secs = 300

[areas]
rl = "bench-rl"
resf = "bench-resf"
sig = "bench-sig"
infra = "bench-infra"

[mattermost]
url = "{url}"
token_file = "{token}"
match = {{ by = "username" }}
timeout_secs = 300

[defaults]
auto_link = true

[guards]
max_removals = 1000000
max_removal_ratio = 1.0
max_additions = 100000000

[ledger]
path = "{run}/ledger.db"

[serve]
listen = "{serve}"

{links}"#,
        ldap = ctx.ldap_url,
        bind = ctx.ldap_bind_dn,
        pw = ctx.ldap_password_file,
        base = ctx.base_dn,
        url = ctx.mm_url,
        token = ctx.token_file,
        run = run.display(),
        serve = propagation::SERVE_LISTEN,
    );
    let path = run.join("config.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn ledger_files(run: &Path) -> Vec<PathBuf> {
    ["ledger.db", "ledger.db-wal", "ledger.db-shm"]
        .iter()
        .map(|f| run.join(f))
        .collect()
}

fn clear_ledger(run: &Path) {
    for f in ledger_files(run) {
        let _ = std::fs::remove_file(f);
    }
}

fn save_ledger(run: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for f in ledger_files(run) {
        if f.exists() {
            std::fs::copy(&f, to.join(f.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

fn load_ledger(run: &Path, from: &Path) -> Result<()> {
    clear_ledger(run);
    for f in ledger_files(from) {
        if f.exists() {
            std::fs::copy(&f, run.join(f.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

/// One `mattersync plan|apply --json` run.
fn mattersync(ctx: &Ctx, cfg: &Path, run: &Path, args: &[&str]) -> Result<Measured> {
    mattersync_bin(&ctx.mattersync, cfg, run, args)
}

/// One `plan|apply --json` run of the binary `bin`.
fn mattersync_bin(bin: &Path, cfg: &Path, run: &Path, args: &[&str]) -> Result<Measured> {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let cfg = cfg.display().to_string();
    let f = child::run(
        bin,
        &full,
        &[
            ("MATTERSYNC_CONFIG", cfg.as_str()),
            ("MATTERSYNC_LOG", "warn,mattersync_directory=debug"),
        ],
        run,
    )?;
    if f.code != 0 && f.code != 2 {
        bail!(
            "mattersync {} exited {}: {}",
            args.join(" "),
            f.code,
            f.stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    let (calls, json) = child::calls(&f.stdout)?;
    let (entries, searches) = child::ldap_entries(&f.stderr);
    let failed = json["report"]["users_failed"].as_u64().unwrap_or(0);
    Ok(Measured {
        wall_ms: f.wall_ms,
        calls: calls.calls,
        writes: calls.writes,
        planned_writes: child::planned_writes(&json),
        ldap_entries: entries,
        ldap_searches: searches,
        max_rss_kib: f.max_rss_kib,
        failed,
        changed: json["changed"].as_bool().unwrap_or(false),
    })
}

async fn check_state(ctx: &Ctx, want: &Expected, what: &str) -> Result<String> {
    let (missing, extra) = floor::verify(&ctx.mm_url, &ctx.token, want).await?;
    let s = if missing == 0 && extra == 0 {
        "ok".to_string()
    } else {
        format!("{missing} missing, {extra} extra")
    };
    eprintln!("bench: state after {what}: {s}");
    Ok(s)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

async fn bench_size(ctx: &Ctx, args: &Args, size: &str) -> Result<SizeResult> {
    let lower = size.to_lowercase();
    let world = if args.skip_prepare {
        ctx.bench.join("world").join(size)
    } else {
        PathBuf::from(script(ctx, &["scripts/bench/prepare.sh", size])?)
    };
    let exp = Expected::load(&world.join("expected.json"))?;
    let mass = Expected::load(&world.join("expected_mass.json"))?;
    let stats = Stats::load(&world.join("stats.json"))?;
    let run = ctx.bench.join("run").join(size);
    std::fs::create_dir_all(&run)?;
    let cfg = config(ctx, &world, &run)?;
    let mut r = SizeResult::new(size, stats);
    let cold_tpl = format!("mmbench_{lower}_cold");
    let warm_tpl = format!("mmbench_{lower}_warm");
    let run_tpl = format!("mmbench_{lower}_run");

    // ---- cold
    if args.cold.iter().any(|s| s.eq_ignore_ascii_case(size)) {
        restore(ctx, &cold_tpl)?;
        let f = floor::run(&ctx.mm_url, &ctx.token, &exp, 1).await?;
        eprintln!("bench: {size} cold floor: {f:?}");
        r.cold_floor_state = check_state(ctx, &exp, "cold floor").await?;
        r.cold_floor = Some(f);
        restore(ctx, &cold_tpl)?;
        clear_ledger(&run);
        let m = mattersync(ctx, &cfg, &run, &["apply", "--yes"])?;
        eprintln!("bench: {size} cold mattersync: {m:?}");
        r.cold_state = check_state(ctx, &exp, "cold mattersync").await?;
        r.cold = Some(m);
        r.cold_executed = true;
    } else {
        // Planned only: what the cold run would send, without the hours of server-side work.
        restore(ctx, &cold_tpl)?;
        clear_ledger(&run);
        let m = mattersync(ctx, &cfg, &run, &["plan"])?;
        let raw = floor::Raw::new(&ctx.mm_url, &ctx.token)?;
        let t = Instant::now();
        let actual = floor::read(&raw, &exp, 1).await?;
        let reads_ms = t.elapsed().as_secs_f64() * 1e3;
        let writes = report::batched_writes(&exp, &actual);
        r.cold_floor = Some(floor::FloorRun {
            wall_ms: reads_ms,
            calls: raw.calls() + writes,
            writes,
            added: exp.memberships,
        });
        r.cold = Some(m);
        r.cold_state = "planned only".into();
    }

    // ---- warm
    // The baseline keeps a ledger of its own (another build may not read this one's).
    let base_run = run.with_file_name(format!("{size}-baseline"));
    let base_cfg = match &args.baseline {
        Some(_) => {
            std::fs::create_dir_all(&base_run)?;
            Some(config(ctx, &world, &base_run)?)
        }
        None => None,
    };
    if !r.cold_executed {
        restore(ctx, &warm_tpl)?;
        clear_ledger(&run);
        let adopt = mattersync(ctx, &cfg, &run, &["apply", "--yes"])?;
        eprintln!("bench: {size} adopt (records pre-existing memberships): {adopt:?}");
        r.adopt = Some(adopt);
    }
    if let (Some(bin), Some(bcfg)) = (&args.baseline, &base_cfg) {
        clear_ledger(&base_run);
        let adopt = mattersync_bin(bin, bcfg, &base_run, &["apply", "--yes"])?;
        eprintln!("bench: {size} baseline adopt: {adopt:?}");
    }
    let floors: Vec<usize> = args.floors.iter().map(|n| (*n).max(1)).collect();
    let mut floor_walls: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut floor_first: BTreeMap<usize, floor::FloorRun> = BTreeMap::new();
    let mut runs = Vec::new();
    let mut base_runs = Vec::new();
    let mut dirs = Vec::new();
    // round 0 is the warm-up of every side, not counted
    for i in 0..=args.repeats.max(1) {
        let mut line = format!(
            "bench: {size} warm #{i}{}:",
            if i == 0 { " (warm-up)" } else { "" }
        );
        for (k, n) in floors.iter().enumerate() {
            let f = floor::run(&ctx.mm_url, &ctx.token, &exp, *n).await?;
            line.push_str(&format!(
                " floor/{n} {:.0} ms ({} calls),",
                f.wall_ms, f.calls
            ));
            if i > 0 {
                floor_walls.entry(*n).or_default().push(f.wall_ms);
                floor_first.entry(*n).or_insert(f);
            }
            // mattersync after the sequential floor, the baseline after the next: ABAB
            if k == 0 {
                let m = mattersync(ctx, &cfg, &run, &["apply", "--yes"])?;
                line.push_str(&format!(
                    " mattersync {:.0} ms ({} calls, changed: {}),",
                    m.wall_ms, m.calls, m.changed
                ));
                if i > 0 {
                    runs.push(m);
                }
            }
            if k == 1 || floors.len() == 1 {
                if let (Some(bin), Some(bcfg)) = (&args.baseline, &base_cfg) {
                    let m = mattersync_bin(bin, bcfg, &base_run, &["apply", "--yes"])?;
                    line.push_str(&format!(
                        " {} {:.0} ms ({} calls),",
                        args.baseline_label, m.wall_ms, m.calls
                    ));
                    if i > 0 {
                        base_runs.push(m);
                    }
                }
            }
        }
        let d = dirfloor::run(
            &ctx.ldap_url,
            &ctx.ldap_bind_dn,
            &ctx.ldap_password,
            &ctx.base_dn,
        )
        .await?;
        line.push_str(&format!(" directory floor {:.0} ms", d.wall_ms));
        eprintln!("{line}");
        if i > 0 {
            dirs.push(d);
        }
    }
    r.warm_state = check_state(ctx, &exp, "warm runs").await?;
    r.warm_floors = floor_walls
        .into_iter()
        .map(|(n, walls)| report::FloorSpread {
            in_flight: n,
            wall: report::Spread::of(walls),
            calls: floor_first.get(&n).map_or(0, |f| f.calls),
        })
        .collect();
    r.warm_floor_ms = r
        .warm_floors
        .iter()
        .find(|f| f.in_flight == 1)
        .map_or(0.0, |f| f.wall.median);
    r.warm_floor = floor_first
        .remove(&1)
        .or_else(|| floor_first.into_values().next());
    r.dir_floor_ms = median(dirs.iter().map(|d| d.wall_ms).collect());
    r.dir_floor = dirs.into_iter().next();
    r.warm_ms = median(runs.iter().map(|m| m.wall_ms).collect());
    r.warm_all_ms = runs.iter().map(|m| m.wall_ms).collect();
    r.warm_spread = report::Spread::of(r.warm_all_ms.clone());
    r.warm = runs.into_iter().max_by_key(|m| m.max_rss_kib);
    if !base_runs.is_empty() {
        r.baseline_label = args.baseline_label.clone();
        r.baseline_spread = report::Spread::of(base_runs.iter().map(|m| m.wall_ms).collect());
        r.baseline_warm = base_runs.into_iter().max_by_key(|m| m.max_rss_kib);
    }
    r.label = args.label.clone();

    // the warm state, to start the mass change and the propagation runs from
    let saved = run.join("ledger-warm");
    if !args.no_mass || args.propagation > 0 {
        script(ctx, &["scripts/bench/mm.sh", "snapshot", &run_tpl])?;
        save_ledger(&run, &saved)?;
    }

    // ---- mass change
    if !args.no_mass {
        let add = world.join("mass_add.ldif").display().to_string();
        let del = world.join("mass_del.ldif").display().to_string();
        script(ctx, &["scripts/bench/dirsrv.sh", "modify", &add])?;
        let outcome = async {
            let f = floor::run(&ctx.mm_url, &ctx.token, &mass, 1).await?;
            eprintln!("bench: {size} mass floor: {f:?}");
            r.mass_floor_state = check_state(ctx, &mass, "mass floor").await?;
            r.mass_floor = Some(f);
            restore(ctx, &run_tpl)?;
            load_ledger(&run, &saved)?;
            let m = mattersync(ctx, &cfg, &run, &["apply", "--yes"])?;
            eprintln!("bench: {size} mass mattersync: {m:?}");
            r.mass_state = check_state(ctx, &mass, "mass mattersync").await?;
            r.mass = Some(m);
            r.mass_adds = mass.added_since(&exp);
            anyhow::Ok(())
        }
        .await;
        // the directory goes back to the generated world whatever happened
        script(ctx, &["scripts/bench/dirsrv.sh", "modify", &del])?;
        outcome?;
    }

    // ---- propagation through `mattersync serve`, each build from the same snapshot
    if args.propagation > 0 {
        let mut sides = vec![(
            ctx.mattersync.clone(),
            label_or(&args.label, "this build"),
            cfg.clone(),
            run.clone(),
        )];
        if let (Some(bin), Some(bcfg)) = (&args.baseline, &base_cfg) {
            save_ledger(&base_run, &base_run.join("ledger-warm"))?;
            sides.push((
                bin.clone(),
                args.baseline_label.clone(),
                bcfg.clone(),
                base_run.clone(),
            ));
        }
        for (k, (bin, label, c, dir)) in sides.iter().enumerate() {
            if k > 0 || !args.no_mass {
                restore(ctx, &run_tpl)?;
                load_ledger(dir, &dir.join("ledger-warm"))?;
            }
            let side = propagation::Side {
                bin,
                label,
                cfg: c,
                run_dir: dir,
            };
            match propagation::run(ctx, &side, &world, args.propagation, args.seed).await {
                Ok(p) => r.propagation.push(p),
                Err(e) => {
                    eprintln!("bench: {size} propagation ({label}) failed: {e:#}");
                    r.propagation_error = format!("{label}: {e:#}");
                }
            }
        }
    }
    Ok(r)
}

fn label_or(label: &str, otherwise: &str) -> String {
    if label.is_empty() {
        otherwise.to_string()
    } else {
        label.to_string()
    }
}

fn machine(ctx: &Ctx) -> BTreeMap<String, String> {
    let sh = |c: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(c)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let mut m = BTreeMap::new();
    m.insert(
        "cpu".into(),
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'"),
    );
    m.insert("cores".into(), sh("nproc"));
    m.insert(
        "memory".into(),
        sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo"),
    );
    m.insert("kernel".into(), sh("uname -r"));
    m.insert(
        "os".into(),
        sh(". /etc/os-release && echo \"$PRETTY_NAME\""),
    );
    m.insert(
        "mattermost".into(),
        sh(&format!(
            "curl -fsS -m 5 -D - -o /dev/null {}/api/v4/system/ping | awk 'tolower($1)==\"x-version-id:\" {{print $2}}' | tr -d '\\r'",
            ctx.mm_url
        )),
    );
    m.insert(
        "389-ds".into(),
        sh(&format!(
            "ldapsearch -x -H {} -s base -b '' -LLL vendorVersion | sed -n 's/^vendorVersion: //p'",
            ctx.ldap_url
        )),
    );
    m.insert(
        "postgresql".into(),
        sh("cd / && runuser -u postgres -- psql -XAtc 'show server_version' 2>/dev/null"),
    );
    m.insert("rustc".into(), sh("rustc -V"));
    m.insert(
        "bench tree".into(),
        sh(&format!(
            "cd {} && git describe --always --dirty",
            ctx.repo.display()
        )),
    );
    m
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let repo = match &args.repo {
        Some(r) => r.clone(),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).canonicalize()?,
    };
    let mattersync = match &args.mattersync {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of the running binary")?
            .join("mattersync"),
    };
    if !mattersync.exists() {
        bail!(
            "{} does not exist: build it (cargo build --release -p mattersync)",
            mattersync.display()
        );
    }
    let bench = repo.join(".local/bench");
    std::fs::create_dir_all(&bench)?;
    let mut ctx = Ctx {
        repo,
        bench,
        mattersync,
        mm_url: String::new(),
        token: String::new(),
        token_file: String::new(),
        ldap_url: String::new(),
        ldap_bind_dn: String::new(),
        ldap_password_file: String::new(),
        ldap_password: String::new(),
        base_dn: String::new(),
    };
    script(&ctx, &["scripts/bench/dirsrv.sh", "up"])?;
    script(&ctx, &["scripts/bench/mm.sh", "up"])?;
    let mm = env_file(&ctx.bench.join("mattermost.env"))?;
    let ds = env_file(&ctx.bench.join("dirsrv.env"))?;
    ctx.mm_url = mm["MATTERSYNC_MM_URL"].clone();
    ctx.token_file = mm["MATTERSYNC_MM_TOKEN_FILE"].clone();
    ctx.token = std::fs::read_to_string(&ctx.token_file)?.trim().to_string();
    ctx.ldap_url = ds["BENCH_LDAP_URL"].clone();
    ctx.ldap_bind_dn = ds["BENCH_LDAP_BIND_DN"].clone();
    ctx.ldap_password_file = ds["BENCH_LDAP_PASSWORD_FILE"].clone();
    ctx.ldap_password = std::fs::read_to_string(&ctx.ldap_password_file)?
        .trim()
        .to_string();
    ctx.base_dn = ds["BENCH_LDAP_BASE_DN"].clone();

    let started = Instant::now();
    let mut results = Vec::new();
    std::fs::create_dir_all(ctx.bench.join("results"))?;
    for size in &args.sizes {
        let size = size.to_uppercase();
        if !["S", "M", "L"].contains(&size.as_str()) {
            bail!("unknown size {size}: S, M or L");
        }
        let t = Instant::now();
        let r = bench_size(&ctx, &args, &size).await?;
        eprintln!(
            "bench: size {size} done in {:.0}s",
            t.elapsed().as_secs_f64()
        );
        println!("{}", report::tables(std::slice::from_ref(&r)));
        results.push(r);
        // what is measured so far survives a later failure
        std::fs::write(
            ctx.bench.join("results").join("partial.json"),
            serde_json::to_string_pretty(&results)?,
        )?;
    }
    let mut m = machine(&ctx);
    m.insert(
        "mattersync binary".into(),
        format!("{} {}", ctx.mattersync.display(), args.label),
    );
    m.insert(
        "command".into(),
        std::env::args().collect::<Vec<_>>().join(" "),
    );
    let text = report::document(&m, &results, started.elapsed().as_secs_f64());
    println!("{text}");
    let dir = ctx.bench.join("results");
    std::fs::create_dir_all(&dir)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let path = dir.join(format!("{stamp}.json"));
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&serde_json::json!({"machine": m, "sizes": results}))?,
    )?;
    std::fs::write(dir.join(format!("{stamp}.md")), &text)?;
    eprintln!("bench: results in {}", path.display());
    Ok(())
}
