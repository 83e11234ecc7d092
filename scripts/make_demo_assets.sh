#!/usr/bin/env bash
# Regenerates the demo teachers shipped in assets/teachers/ (about 55 minutes on this 2-core CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
MSD="${MSD:-.venv/bin/msd}"
rm -rf assets/teachers/easy-vqa assets/teachers/synthetic
# easy-VQA: a two-tower model widened to teacher size, with the max-pooling image encoder and
# concat+product fusion; 3 epochs, then resumed to 6 (which is how the shipped one was trained).
"$MSD" train-teacher --data easy-vqa --model student-two-tower --model-option hidden=192 --model-option layers=2 \
  --model-option heads=4 --model-option intermediate=384 --model-option image_encoder=maxpool \
  --model-option fusion=concat+product --epochs 3 --batch-size 32 --lr 1e-3 --seed 0 --out assets/teachers/easy-vqa
"$MSD" train-teacher --out assets/teachers/easy-vqa --resume --epochs 6
# The synthetic teacher predates the max-pooling image encoder and is kept strided: the quality sweep's
# synthetic rows were distilled from it.
"$MSD" train-teacher --data synthetic --data-option n=4000 --model teacher-small --model-option image_encoder=strided \
  --epochs 8 --batch-size 32 --lr 5e-4 --seed 0 --out assets/teachers/synthetic
rm -f assets/teachers/*/trainer_state.pt   # optimizer state: not needed to use the teachers
