#!/usr/bin/env bash
# The GPU measurements of issue 15 (and the GPU health check), in parts that each fit the device's
# 10-minute command limit. On the GPU machine, from the project root (../shared/device/README.md):
#
#   source .device/setup.sh && bash experiments/gpu/session.sh PART
#
# Each part collects its logs and results (never checkpoints) in /tmp/gpu-session/<part>/ and packs them
# into one file, $OUT/<part>.tar.gz (the device brings back at most 8 files). Sweeps are
# resumable: a part stopped by its time limit says so; the same command continues it (while the
# machine is warm, runs/ is still there). Parts, in the order a 30-minute session should take them:
#
#   check            the CUDA suite and the default suite on the GPU (-> experiments/gpu-check/)  ~5 min
#   bench            make bench: fp32, graphed fp32, speed=fast; --share 4 with and without MPS     ~5 min
#   fidelity-fp32    8k iterations, {plain,resnet} x {20,56} x seeds {0,1}, the paper's fp32 path  ~9 min
#   fidelity-graphed the same with the whole-step graph (fp32)                                      ~3 min
#   fidelity-fast    the same with speed=fast (bf16, compile, channels_last, graphs)                ~3 min
#   grid             the paper's grid, speed=fast, 5 jobs under MPS; run again until it says done
#
# SESSION_TINY=1 runs every part at a toy size on whatever device there is (a check of this script).
set -uo pipefail

part=${1:?usage: session.sh check|bench|fidelity-fp32|fidelity-graphed|fidelity-fast|grid}
out=${OUT:?the device sets OUT: the folder whose files come back}
work="/tmp/gpu-session/$part"
rm -rf "$work" && mkdir -p "$work"
data=(data.root="${CIFAR:?source .device/setup.sh first (it sets CIFAR)}" data.download=false)
limit=540  # seconds a part may run: the device stops a command at 600
if [[ ${SESSION_TINY:-0} == 1 ]]; then
  tiny_run=(trainer.max_steps=6 trainer.eval_every=3 trainer.log_every=3 model.depth=8 data.batch_size=16)
  tiny_bench=(--depths 8 --steps 2 --warmup 1 --rounds 1 --batch-size 16 --train-size 256)
else
  tiny_run=()
  tiny_bench=(--depths 20,110)
fi

logged() {  # log name, command...: runs the command into $work/<log name>.log and records its exit code
  local name=$1; shift
  "$@" > "$work/$name.log" 2>&1
  echo "$name: exit $?" | tee -a "$work/exit-codes.txt"
}

sweep() {  # name, overrides...: a sweep under $limit, resumed by running the part again
  local name=$1; shift
  local started=$SECONDS
  timeout "$limit" python3 -m degradation.train "${data[@]}" name="$name" trainer.progress_bar=false "$@" "${tiny_run[@]}" \
    > "$work/$name.log" 2>&1
  local code=$?
  mkdir -p runs "$work/runs"
  # every attempt's wall time, kept beside the sweep so that a resumed sweep's total adds up
  echo "$name: exit $code after $((SECONDS - started)) s ($(date -u +%FT%TZ))" | tee -a "runs/$name.session-times"
  [[ $code == 124 ]] && echo "$name: stopped by the time limit; run this part again to continue"
  tail -n 15 "$work/$name.log"
  cp "runs/$name.session-times" "$work/"
  tar cf - -C runs --exclude checkpoints --exclude '*.ckpt' "$name" | tar xf - -C "$work/runs"
}

case $part in
  check)
    logged test-gpu python3 -m pytest -m gpu -q -n 4 -p no:cacheprovider
    logged test python3 -m pytest -m "not slow and not gpu" -q -n 8 -p no:cacheprovider
    tail -n 3 "$work/test-gpu.log" "$work/test.log"
    ;;
  bench)
    logged fp32 python3 -m degradation.bench "${tiny_bench[@]}" --switches none --share 0 --out "$work"
    logged graphed python3 -m degradation.bench "${tiny_bench[@]}" --switches none --share 0 --out "$work" speed.cuda_graphs=true
    logged fast python3 -m degradation.bench "${tiny_bench[@]}" --switches none --share 4 --out "$work" speed=fast
    grep -h "ms/step\|sharing\|error" "$work"/*.log
    ;;
  fidelity-fp32) sweep fidelity-fp32 experiment=fidelity_8k launcher=joblib jobs=4 ;;
  fidelity-graphed) sweep fidelity-graphed experiment=fidelity_8k launcher=joblib jobs=4 speed.cuda_graphs=true ;;
  fidelity-fast) sweep fidelity-fast experiment=fidelity_8k launcher=joblib jobs=4 speed=fast ;;
  grid) sweep grid-fast experiment=sweep_cifar launcher=joblib jobs=5 speed=fast ;;
  *) echo "error: unknown part '$part'" >&2; exit 2 ;;
esac
tar czf "$out/$part.tar.gz" -C "$(dirname "$work")" "$part" && echo "wrote $out/$part.tar.gz"
