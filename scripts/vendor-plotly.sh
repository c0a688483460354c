#!/usr/bin/env bash
# Puts plotly.js's "cartesian" partial bundle in service/web/vendor/, from the npm registry,
# checked against the integrity hash npm publishes for it. The dashboard draws only heatmaps and
# scatter traces, which that bundle holds in 1.5 MB against the full bundle's 4.8 MB: the browser
# parses a third of it, and a cold sweep page renders ~0.45 s sooner (bench/README.md).
# To move to another release: set VERSION, and INTEGRITY from
#   npm view plotly.js-cartesian-dist-min@VERSION dist.integrity
set -euo pipefail
VERSION=4.1.1
INTEGRITY=sha512-o8GrFeusncwBIxbBynRJpY4pkgVB6caM+JLpwrLYbbsO7dZ8FJ+SVN2Fr+L7kiG/Z6w4P5O0Jus/Qr5EefHVeg==

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL "https://registry.npmjs.org/plotly.js-cartesian-dist-min/-/plotly.js-cartesian-dist-min-$VERSION.tgz" \
    -o "$tmp/bundle.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tmp/bundle.tgz" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
    echo "plotly.js-cartesian-dist-min $VERSION: integrity $got, expected $INTEGRITY" >&2
    exit 1
fi
tar -xzf "$tmp/bundle.tgz" -C "$tmp"
# Two configuration defaults name plotly's servers: the topojson files of map traces (not in this
# bundle) and Chart Studio's "edit" link (off unless asked). Neither is ever fetched here; pointed
# at this server instead, no configuration of a page can make it reach outside.
sed -e 's#dflt:"https://cdn.plot.ly/un/"#dflt:"/vendor/topojson/"#' \
    -e 's#dflt:"https://cloud.plotly.com/newchart"#dflt:""#' \
    "$tmp/package/plotly-cartesian.min.js" > service/web/vendor/plotly-cartesian.min.js
if grep -qE 'dflt:"https?://' service/web/vendor/plotly-cartesian.min.js; then
    echo "plotly.js $VERSION has another remote default; look at it before shipping" >&2
    exit 1
fi
cp "$tmp/package/LICENSE" service/web/vendor/plotly.js-LICENSE.txt
echo "service/web/vendor/: plotly.js cartesian $VERSION"
