#!/usr/bin/env bash
# Refreshes the vendored charting library of the live chart page.
#
# The page loads lightweight-charts (TradingView, Apache-2.0) from the query
# service itself, never from a CDN: this script fetches the npm package into
# a temporary folder, copies its standalone production build into
# query/web/vendor/ (committed, so builds need no network) and records the
# version and licence beside it. Run it to move to another version:
#
#   query/web/vendor.sh            # the version pinned below
#   query/web/vendor.sh 5.2.1      # a given version
set -euo pipefail
cd "$(dirname "$0")"

version="${1:-5.2.1}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "lightweight-charts@${version}" >/dev/null)
tar -xzf "$tmp"/lightweight-charts-*.tgz -C "$tmp"
pkg="$tmp/package"

mkdir -p vendor
cp "$pkg/dist/lightweight-charts.standalone.production.js" vendor/lightweight-charts.standalone.production.js
cp "$pkg/LICENSE" vendor/LICENSE.lightweight-charts
license="$(node -p "require('$pkg/package.json').license")"
cat > vendor/VERSION <<INFO
lightweight-charts ${version}
license: ${license} (vendor/LICENSE.lightweight-charts)
file: dist/lightweight-charts.standalone.production.js of the npm package
refreshed by: query/web/vendor.sh ${version}
INFO
echo "vendored lightweight-charts ${version} (${license})"
