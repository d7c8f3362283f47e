#!/usr/bin/env bash
# Fetch the dashboard's front-end libraries from the npm registry (pinned versions) into
# local/crmjobs_local/dashboard/static/vendor/. The files are committed; run this only to
# change a version.
set -euo pipefail
HTMX=2.0.11          # htmx.org, 0BSD
JSON_EDITOR=2.17.2   # @json-editor/json-editor, MIT
PICO=2.1.1           # @picocss/pico, MIT
cd "$(dirname "$0")/.."
vendor=local/crmjobs_local/dashboard/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack -q "htmx.org@$HTMX" "@json-editor/json-editor@$JSON_EDITOR" "@picocss/pico@$PICO" >/dev/null)
for archive in "$work"/*.tgz; do
  mkdir -p "${archive%.tgz}" && tar xzf "$archive" -C "${archive%.tgz}"
done
cp "$work/htmx.org-$HTMX/package/dist/htmx.min.js" "$vendor/htmx.min.js"
cp "$work/json-editor-json-editor-$JSON_EDITOR/package/dist/jsoneditor.js" "$vendor/jsoneditor.min.js"
cp "$work/json-editor-json-editor-$JSON_EDITOR/package/dist/jsoneditor.js.LICENSE.txt" \
  "$vendor/jsoneditor.min.js.LICENSE.txt"
cp "$work/picocss-pico-$PICO/package/css/pico.min.css" "$vendor/pico.min.css"
echo "vendored htmx.org $HTMX, @json-editor/json-editor $JSON_EDITOR, @picocss/pico $PICO"
