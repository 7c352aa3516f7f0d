#!/bin/sh
# Builds the WAL addon (build/Release/tetcd_wal.node) with node-gyp against the running Node's own headers
# (<prefix>/include/node), so nothing is downloaded. Used by `npm install`.
set -e
cd "$(dirname "$0")/.."
NODEDIR="$(node -p "require('path').resolve(process.execPath, '../..')")"
if [ ! -f "$NODEDIR/include/node/node_api.h" ]; then
  echo "tetcd: Node headers not found under $NODEDIR/include/node; install them (Debian: apt-get install libnode-dev) or set npm_config_nodedir" >&2
  [ -n "${npm_config_nodedir:-}" ] && NODEDIR="$npm_config_nodedir" || exit 1
fi
exec node node_modules/node-gyp/bin/node-gyp.js rebuild --nodedir="$NODEDIR"
