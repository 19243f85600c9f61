#!/usr/bin/env bash
# Runs every test of the workspace from a clean clone: installs what the tests need, then runs
# `cargo test` over all crates (unit, integration, property and doc tests). Slow soak runs are
# marked #[ignore] and run with `scripts/test.sh --soak`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: Renda needs the Rust toolchain (rustup, Rust 1.90 or newer)." >&2
    exit 1
fi

# The dashboard's browser tests drive Debian's Chromium through chromedriver, never a
# downloaded browser; the printed reports are read back with poppler's pdftotext, and need a
# Chinese font to print with.
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver || ! -x /usr/bin/pdftotext ||
      ! -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "the dashboard tests need Debian's chromium, chromium-driver, poppler-utils and fonts-wqy-microhei packages" >&2
        exit 1
    fi
    sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    packages=(chromium chromium-driver poppler-utils fonts-wqy-microhei)
    "${sudo[@]}" apt-get install -y -q "${packages[@]}" >/dev/null ||
        { "${sudo[@]}" apt-get update -q >/dev/null &&
          "${sudo[@]}" apt-get install -y -q "${packages[@]}" >/dev/null; }
fi

# The Query API is proven from Python (tests/python/query_api.py): stubs generated from proto/
# with grpcio-tools, a stock grpcio client, and the packages that read health checks, server
# reflection and rich errors. Its contract is checked with buf (tests/proto_contract.rs), which
# PyPI ships as buf-bin. The metrics endpoint is read by the Prometheus project's own parser
# (prometheus-client; tests/python/metrics_scrape.py). Pinned to the major versions the tests
# were written against.
python_packages=("grpcio-tools>=1.60,<2" "grpcio-health-checking>=1.60,<2"
                 "grpcio-reflection>=1.60,<2" "grpcio-status>=1.60,<2" "buf-bin>=1.40,<2"
                 "prometheus-client>=0.20,<1")
if ! python3 -c "import grpc_tools, grpc_health, grpc_reflection, grpc_status, prometheus_client" 2>/dev/null ||
   ! python3 -m pip show -q buf-bin >/dev/null 2>&1; then
    python3 -m pip install -q --disable-pip-version-check "${python_packages[@]}" ||
        { echo "the Query API and metrics tests need Python 3 with pip: ${python_packages[*]}" >&2; exit 1; }
fi

extra=()
if [[ "${1:-}" == "--soak" ]]; then
    extra=(-- --include-ignored)
    # The soak runs the previous release's binary beside this one (tests/release_soak.rs).
    RENDA_PREVIOUS_BIN="$(bash scripts/previous-release.sh)"
    export RENDA_PREVIOUS_BIN
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A clean clone gains nothing from incremental caches, which would double the disk the build takes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Lints first (warnings are errors), so the test summary stays the run's last word.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Proptest prints the seed of any failing case; a committed regression file replays it.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "${extra[@]}" 2>&1 | tee "$log"
# cargo prints one summary per test binary, the last often a doc-test run with nothing in it;
# close with the total over all of them.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
