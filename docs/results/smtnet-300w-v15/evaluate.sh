#!/usr/bin/env bash
# After interpolate.sh: export a chosen point fp16 and check issue 17's gate on the 300-W common set
# (tiny <= 3.75, small <= 3.40), with the eighth run's script on this run's points and folders.
#   bash evaluate.sh tiny A   or   bash evaluate.sh small A
RUN=15 exec bash docs/results/smtnet-300w-v7/evaluate.sh "$@"
