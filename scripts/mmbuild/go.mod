module mattersync.local/mmbuild

go 1.24.11

require (
	github.com/mattermost/mattermost/server/public v0.1.22-0.20260113165922-8e4cadbc88ee
	github.com/mattermost/mattermost/server/v8 v8.0.0-20260113162330-9e1d4c2072c0
)

replace github.com/mattermost/mattermost/server/public => github.com/mattermost/mattermost/server/public v0.1.22-0.20260113165922-8e4cadbc88ee

replace github.com/olekukonko/tablewriter => github.com/olekukonko/tablewriter v0.0.5
