#!/usr/bin/env bash
# Regenerates the demo teachers shipped in assets/teachers/ (about 15 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
MSD="${MSD:-.venv/bin/msd}"
rm -rf assets/teachers/easy-vqa assets/teachers/synthetic
"$MSD" train-teacher --data easy-vqa --model teacher-small --epochs 4 --batch-size 32 --lr 5e-4 --seed 0 \
  --out assets/teachers/easy-vqa
# The synthetic teacher predates the max-pooling image encoder and is kept strided: the quality sweep's
# synthetic rows were distilled from it.
"$MSD" train-teacher --data synthetic --data-option n=4000 --model teacher-small --model-option image_encoder=strided \
  --epochs 8 --batch-size 32 --lr 5e-4 --seed 0 --out assets/teachers/synthetic
rm -f assets/teachers/*/trainer_state.pt   # optimizer state: not needed to use the teachers
