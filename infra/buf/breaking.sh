#!/usr/bin/env bash
# `buf breaking` of proto/ against the previous commit. The previous tree is checked out apart,
# given the same printed buf/validate import, and compared with the work tree (same workspace shape).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
base="${1:-HEAD~1}"
if ! git rev-parse -q --verify "$base^{commit}" >/dev/null; then
  echo "breaking: no $base to compare with (first commit or shallow clone); skipped"
  exit 0
fi
if ! git cat-file -e "$base:buf.yaml" 2>/dev/null; then
  echo "breaking: $base has no buf.yaml; nothing to compare"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'git worktree remove --force "$tmp/tree" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/tree" "$base" >/dev/null 2>&1
cp -r .proto-deps "$tmp/tree/.proto-deps"
npx buf breaking --against "$tmp/tree"
echo "breaking: proto/ is compatible with $base"
