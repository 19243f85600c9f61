#!/usr/bin/env bash
# Writes the golden fixtures of a tagged release with that release's own code: builds the tag in
# a worktree, runs its generator (tests/fixtures/<tag>/generate.rs, a test that the tag's
# sources compile) and leaves the fixtures in tests/fixtures/<tag>/. Run once per release;
# fixtures are never edited or written again, only added for a new release
# (docs/compatibility.md). Usage: scripts/golden-fixtures.sh v0.6.0
set -euo pipefail
tag=${1:?usage: scripts/golden-fixtures.sh <tag>}
repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/tests/fixtures/$tag"
generator="$out/generate.rs"
[ -f "$generator" ] || { echo "no generator at $generator" >&2; exit 1; }
if [ -f "$out/manifest.json" ]; then
    echo "$out already holds fixtures; they are never written again" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$repo" worktree add --detach "$work/src" "$tag" >/dev/null
cp "$generator" "$work/src/tests/golden_generate.rs"
(cd "$work/src" && RENDA_GOLDEN_OUT="$out" cargo test --locked --test golden_generate -- --ignored --nocapture)
ls -l "$out"
