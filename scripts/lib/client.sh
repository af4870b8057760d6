# The @sumu/client package (clients/js): Node.js and its pinned npm packages (npm ci from the
# committed lock file), then its tests. Sourced after scripts/lib/common.sh; uses the moto of
# scripts/test (SUMU_MOTO_ENDPOINT) for the end-to-end tests against sumu-local.

CLIENT_JS="$ROOT/clients/js"

# Node.js >= 20 (apt-get when missing) and clients/js's packages, reinstalled only when
# package-lock.json changes.
ensure_client_deps() {
  ensure_npm_packages "$CLIENT_JS" "@sumu/client"
}

# Builds the package and runs its tests: logic (fake gateway), the demo bundle is up to date,
# npm pack → install → import → tsc, and end to end against sumu-local + moto.
run_client_tests() {
  ensure_client_deps
  log "cargo build sumu-local (for @sumu/client's end-to-end tests)"
  (cd "$ROOT" && cargo build --workspace --bins --locked)
  log "@sumu/client tests"
  (cd "$CLIENT_JS" && npm test --silent)
}
