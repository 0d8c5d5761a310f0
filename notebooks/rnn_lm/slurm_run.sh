#!/bin/bash
# Example SLURM batch script for hw3 (character-level RNN language models on Tiny Shakespeare).
#
# Submit from the repository root (the job runs in the directory you submit from):
#     sbatch notebooks/rnn_lm/slurm_run.sh
# Watch the progress:   tail -f gen.out     (training log and generated text)
# Errors go to gen.err (drop --no-progress to get progress bars there too).
#
# Change the hyper-parameters on the `python` line at the bottom; every flag is listed by
#     python -m course_lib.runners.rnn_lm --help
#
#SBATCH -J rnn_lm
#SBATCH -o gen.out
#SBATCH -e gen.err
#SBATCH -c 9
#SBATCH --mem=44g
#SBATCH --gres=gpu:1
#SBATCH -t 1:00:00
# Uncomment (delete one '#') to use the GPU nodes reserved for the class:
##SBATCH --reservation=ling282_2025

set -euo pipefail

# Activate the course environment: a conda environment if COURSE_CONDA_ENV is set,
# otherwise the virtual environment in COURSE_VENV (default: .venv in the repository).
if [[ -n "${COURSE_CONDA_ENV:-}" ]]; then
    # shellcheck disable=SC1091
    source "$(conda info --base)/etc/profile.d/conda.sh"
    conda activate "$COURSE_CONDA_ENV"
else
    # shellcheck disable=SC1091
    source "${COURSE_VENV:-.venv}/bin/activate"
fi

echo "job ${SLURM_JOB_ID:-local} on $(hostname) at $(date)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU visible"

python -u -m course_lib.runners.rnn_lm --scale full --model_type rnn --hidden_size 256 --embedding_size 64 \
    --batch_size 64 --learning_rate 0.001 --epochs 64 --temperature 1.0 --l2 0.0 --dropout 0.0 \
    --generate_every 4 --no-progress
