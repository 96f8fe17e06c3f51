#!/usr/bin/env bash
# Multi-process training with torchrun:
#   bash tools/dist_train.sh CONFIG NUM_GPUS [ARGS of tools/train.py]
# Several nodes: run it on every node with NNODES, NODE_RANK, MASTER_ADDR
# and the same PORT (see docs/distributed.md).
set -e

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_GPUS [ARGS of tools/train.py]" >&2
    exit 1
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
torchrun \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
