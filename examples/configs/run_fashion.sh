#!/bin/sh
# The four Fashion-MNIST searches of docs/results.md (about 1.5 hours on 2 cores).
# Each throughput run reuses the baseline trained by the memory run of the same model.
set -e
for model in lenet5 vgg11; do
    condensa search examples/configs/fashion_${model}_memory.toml "$@"
    condensa search examples/configs/fashion_${model}_throughput.toml \
        --set model.checkpoint=runs/fashion_${model}_memory/baseline.condensa "$@"
done
