#!/usr/bin/env bash
# The main job: set up .venv (tools/install.sh, as CI), write the default data, then run each bundle's own short
# end-to-end demo (bundles/<name>/scripts/quickstart.sh, from its bundle root), or only the bundles named:
#   bash tools/quickstart.sh                            # every bundle that has a demo
#   bash tools/quickstart.sh dti_lge_style_transfer     # that bundle, after the bundles its demo requires
#   bash tools/quickstart.sh --list [name ...]          # print the order, run nothing
# A demo's `# requires: <bundle> ...` line names bundles whose demo must run first (their trained models are used);
# a demo gets PY (the venv's python), DATA_ROOT (the default data) and BUNDLES_DIR (where those bundles are).
# Re-running resumes from the checkpoints under bundles/*/models/ (delete that folder to start afresh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
demo=scripts/quickstart.sh

list=false
if [ "${1:-}" = "--list" ]; then list=true; shift; fi
if [ $# -eq 0 ]; then
    set -- $(for d in bundles/*/$demo; do basename "$(dirname "$(dirname "$d")")"; done)
fi
order=()
add() {  # depth-first: the bundles a demo requires come before it, each once
    local name=$1 required
    [ -f "bundles/$name/$demo" ] || { echo "quickstart: bundles/$name/$demo does not exist" >&2; exit 2; }
    for done_name in "${order[@]:-}"; do [ "$done_name" = "$name" ] && return 0; done
    for required in $(sed -n 's/^# requires: *//p' "bundles/$name/$demo"); do add "$required"; done
    order+=("$name")
}
for name in "$@"; do add "$name"; done
if $list; then printf '%s\n' "${order[@]}"; exit 0; fi

[ -x .venv/bin/python ] || bash tools/install.sh  # run it yourself to complete an older .venv
py=$root/.venv/bin/python
[ -d data/DTI_LGE_MI ] || "$py" -m tools.make_data --out data
timings=()
for name in "${order[@]}"; do
    echo; echo "##### $name"
    start=$SECONDS
    (cd "bundles/$name" && PY=$py DATA_ROOT=$root/data BUNDLES_DIR=$root/bundles bash $demo)
    timings+=("$name $((SECONDS - start)) s")
done
echo; echo "Done: ${order[*]}"
printf '  %s\n' "${timings[@]}"
