module mattersync.local/mmbuild

go 1.21

require (
	github.com/mattermost/mattermost/server/public v0.1.3
	github.com/mattermost/mattermost/server/v8 v8.0.0-20240520151130-4bdd8bb18e47
)

replace github.com/mattermost/mattermost/server/public => github.com/mattermost/mattermost/server/public v0.1.3

exclude (
	github.com/RoaringBitmap/roaring v0.7.0
	github.com/RoaringBitmap/roaring v0.7.1
)

exclude github.com/dyatlov/go-opengraph v0.0.0-20210112100619-dae8665a5b09

exclude github.com/willf/bitset v1.2.0
