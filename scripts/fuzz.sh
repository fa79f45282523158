#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ and runs each for FUZZ_SECONDS (default 20), one after
# the other; stops at the first crash, whose input libFuzzer saves under
# fuzz/artifacts/<target>/. Installs cargo-fuzz and the nightly toolchain when missing.
#
#   FUZZ_SECONDS=600 scripts/fuzz.sh                 # longer, by hand (make fuzz-long)
#   FUZZ_TARGETS="label_selector json_patch" scripts/fuzz.sh
#
# Targets run without a sanitizer: kadm's crates forbid unsafe code, so what the fuzzers
# look for are panics (overflows, index errors, failed assertions, unbounded recursion)
# and wrong results, not memory errors. FUZZ_SANITIZER=address turns ASan back on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-none}
# Input size cap: large enough for real objects, small enough to keep runs fast.
max_len=${FUZZ_MAX_LEN:-8192}

if ! rustup toolchain list | grep -q '^nightly'; then
	rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	cargo install cargo-fuzz --locked
fi

all_targets=$(cargo +nightly fuzz list)
targets=${FUZZ_TARGETS:-$all_targets}

# One build for every target (16 codegen units: a cold build in about two minutes on two cores),
# then the binaries run directly: `cargo fuzz run` would re-check the build for each target.
cargo +nightly fuzz build --sanitizer "$sanitizer" --codegen-units 16
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="target/$host/release"

dict_for() {
	case "$1" in
	json_decode | strategic_merge_patch | json_patch | merge_patch | protobuf_decode) echo dicts/json.dict ;;
	yaml_decode) echo dicts/yaml.dict ;;
	label_selector | field_selector) echo dicts/selector.dict ;;
	cron_schedule) echo dicts/cron.dict ;;
	esac
}

summary=()
for t in $targets; do
	mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
	dict=$(dict_for "$t")
	log=$(mktemp)
	echo "== fuzzing $t for ${seconds}s"
	status=0
	"$bin_dir/$t" "corpus/$t" "seeds/$t" -artifact_prefix="artifacts/$t/" \
		-max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
		${dict:+-dict="$dict"} -print_final_stats=1 >"$log" 2>&1 || status=$?
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
	if [ "$status" -ne 0 ]; then
		tail -n 60 "$log"
		rm -f "$log"
		echo "fuzz target $t failed after $runs runs; the input is in fuzz/artifacts/$t/" >&2
		echo "reproduce: cd fuzz && cargo +nightly fuzz run -s $sanitizer $t artifacts/$t/<file>" >&2
		exit 1
	fi
	rm -f "$log"
	summary+=("$(printf '%-24s %12s runs' "$t" "$runs")")
done
echo "== fuzzing done (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
