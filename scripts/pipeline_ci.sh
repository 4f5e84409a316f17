#!/usr/bin/env bash
# Pipeline CI: reproduce the committed pipeline from the DVC remote's cache, verify it, share
# it, and report. Runs on any CI and locally, from the project root, in the project's
# environment (`make pipeline-ci` sets that up):
#
#   scripts/pipeline_ci.sh [BASE]     BASE: the revision to compare with (default origin/main)
#
# 1. pull what the remote has (outputs and run-cache) for the committed dvc.lock;
# 2. `dvc repro`: only stages whose outputs are neither pulled nor in the run-cache run;
# 3. fail if `dvc status` is not clean or if dvc.lock differs from the committed one (the same
#    code and params must give the same bytes);
# 4. push the outputs and run-cache, so nobody runs those stages again;
# 5. write a Markdown report ($REPORT, default pipeline-report.md; appended to
#    $GITHUB_STEP_SUMMARY when set): the verdict, metrics and params against BASE, plots.
set -euo pipefail

base=${1:-origin/main}
report=${REPORT:-pipeline-report.md}
plots=${PLOTS_DIR:-dvc_plots}
has_remote=$(dvc remote default 2>/dev/null || true)

step() { printf '\n== %s\n' "$*"; }

if [ -n "$has_remote" ]; then
  step "pulling outputs and run-cache from remote '$has_remote'"
  # Missing files are fine: their stages are reproduced below.
  dvc pull --run-cache --allow-missing || echo "(some outputs are not on the remote yet)"
else
  step "no default DVC remote: every stage whose outputs are missing runs here"
fi

step "dvc repro"
repro_log=$(mktemp)
dvc repro 2>&1 | tee "$repro_log"
ran=$(sed -n "s/^Running stage '\(.*\)':$/\1/p" "$repro_log" | paste -sd ' ' -)
restored=$(sed -n "s/^Stage '\(.*\)' is cached - skipping run.*/\1/p" "$repro_log" | paste -sd ' ' -)

step "verifying"
problems=()
if ! dvc status --quiet; then
  dvc status
  problems+=("\`dvc status\` is not clean after \`dvc repro\`")
fi
if ! git diff --quiet -- dvc.lock; then
  git --no-pager diff --stat -- dvc.lock
  problems+=("dvc.lock differs from the committed one: commit the dvc.lock of your own \`dvc repro\` (or the code does not reproduce its outputs byte for byte)")
fi

if [ ${#problems[@]} -eq 0 ] && [ -n "$has_remote" ]; then
  step "pushing outputs and run-cache to '$has_remote'"
  dvc push --run-cache
fi

step "report -> $report"
{
  echo "# Pipeline report"
  echo
  if [ ${#problems[@]} -eq 0 ]; then
    echo "Reproduced: \`dvc status\` is clean and dvc.lock is the committed one."
  else
    for p in "${problems[@]}"; do echo "- **Failed**: $p"; done
  fi
  echo
  echo "- stages run here: ${ran:-none}"
  echo "- stages restored from the run-cache: ${restored:-none}"
  echo
  echo "## Verdict"
  echo
  if [ -f reports/report.md ]; then
    sed -n '/^## Verdict/,/^## /{/^## /!p}' reports/report.md | sed '/./,$!d'
  else
    echo "(no reports/report.md)"
  fi
  echo "## Metrics (this revision vs \`$base\`)"
  echo
  # metrics/ only: timings/ differ on every run and are not versioned.
  table=$(dvc metrics diff --md "$base" --targets metrics 2>/dev/null) ||
    table="(no metrics to compare with \`$base\`)"
  echo "${table:-No metric changed.}"
  echo
  echo "## Params (this revision vs \`$base\`)"
  echo
  table=$(dvc params diff --md "$base" 2>/dev/null) ||
    table="(no params to compare with \`$base\`)"
  echo "${table:-No param changed.}"
  echo
  echo "## Plots"
  echo
  if dvc plots diff "$base" -o "$plots" >/dev/null 2>&1; then
    echo "Training and quality-diversity curves of both revisions: \`$plots/index.html\`."
  else
    echo "(no plots)"
  fi
} >"$report"
cat "$report"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$report" >>"$GITHUB_STEP_SUMMARY"
fi

if [ ${#problems[@]} -ne 0 ]; then
  printf 'error: %s\n' "${problems[@]}" >&2
  exit 1
fi
