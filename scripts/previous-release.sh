#!/usr/bin/env bash
# Builds the newest tagged release that CHANGELOG.md names ("## 0.6.0 (tag `v0.6.0`, commit
# 0ce4f3a)") in a worktree of its own, and prints the path of its `renda` binary. The build is
# kept under target/releases/<tag>/, so a second soak run reuses it. The tag is used where this
# clone has it, the commit the changelog names otherwise. `scripts/test.sh --soak` runs it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
line=$(grep -m1 -E '^## [0-9.]+ \(tag `v[0-9.]+`, commit [0-9a-f]+\)' "$repo/CHANGELOG.md") || {
    echo "CHANGELOG.md names no tagged release" >&2
    exit 1
}
tag=$(sed -E 's/.*tag `([^`]+)`.*/\1/' <<<"$line")
commit=$(sed -E 's/.*commit ([0-9a-f]+)\).*/\1/' <<<"$line")
rev=$tag
if ! git -C "$repo" rev-parse -q --verify "refs/tags/$tag^{commit}" >/dev/null; then
    rev=$commit
fi
if ! git -C "$repo" rev-parse -q --verify "$rev^{commit}" >/dev/null; then
    echo "neither tag $tag nor commit $commit is in this clone: fetch them (git fetch --tags) to build the previous release" >&2
    exit 1
fi
out="$repo/target/releases/$tag"
if [[ ! -x "$out/renda" ]]; then
    work=$(mktemp -d)
    trap 'git -C "$repo" worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
    git -C "$repo" worktree add --detach "$work/src" "$rev" >/dev/null 2>&1
    echo "building the previous release, $tag ($rev), into $out" >&2
    (cd "$work/src" && CARGO_TARGET_DIR="$out/target" cargo build --release --locked --bin renda >&2)
    cp "$out/target/release/renda" "$out/renda"
fi
echo "$out/renda"
