#!/usr/bin/env bash
# Fuzzes one target for N seconds (default 30):
#   fuzz/run.sh [TARGET] [SECONDS] [extra libFuzzer flags...]
# TARGET (default `frame`): frame (y-websocket messages into a document), ws_frame
# (the WebSocket frame reader against tungstenite's), awareness, content (HTML,
# Markdown, ProseMirror JSON); `cargo fuzz list` names them.
# Installs cargo-fuzz if it is missing. Needs the nightly toolchain (`rustup toolchain
# install nightly`) and a C++ compiler. Exits non-zero when the target crashes; the input
# that crashed it is left in fuzz/artifacts/TARGET/: keep it in fuzz/regressions/TARGET/,
# which the tests replay.
set -euo pipefail
cd "$(dirname "$0")/.."   # the repository root: cargo fuzz finds fuzz/ from there
target=frame
if [ $# -gt 0 ] && ! [[ $1 =~ ^[0-9]+$ ]]; then
  target=$1
  shift
fi
seconds="${1:-30}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# yrs pre-reserves room for as many blocks as an update claims (up to 2^32, ~32 GiB) with
# try_reserve: a 43-byte frame can ask for that. In a server the allocator refuses
# (try_reserve then fails and the frame is refused) or maps untouched virtual memory, so
# it is not a crash there; ASan's default is to abort instead. Make ASan return null as
# the system allocator would, and judge memory by RSS (-rss_limit_mb) rather than by the
# size of one reservation. Pass -malloc_limit_mb=2048 to see those reservations again.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1"

# Built like the server's release binary (-O: optimised, no debug assertions), so that
# what fails here fails in production. yrs has a debug_assert! on client ids >= 2^53 that
# any 17-byte update frame trips (see README.md); FUZZ_DEBUG_ASSERTIONS=1 builds with
# debug assertions and overflow checks instead (cargo fuzz's default), to hunt for those.
mode=(-O)
if [ "${FUZZ_DEBUG_ASSERTIONS:-0}" = 1 ]; then
  mode=(--debug-assertions)
fi

# New inputs found while fuzzing go to fuzz/corpus-work/ (git-ignored); the committed
# seeds in fuzz/corpus/TARGET/ are only read.
mkdir -p "fuzz/corpus-work/$target"
echo "== fuzzing $target for ${seconds}s"
exec cargo +nightly fuzz run "${mode[@]}" "$target" "fuzz/corpus-work/$target" "fuzz/corpus/$target" -- \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=65536 -print_final_stats=1 "$@"
