"""`vidcap ablate`: the paper's Tables IV and V, and three controls, under one budget.

A grid of named cells, each a list of `--set` overrides laid over CONFIG (and the user's own
overrides); every cell sets every factor of the grid, so CONFIG's own values of those factors do
not leak into it:

    align-tau{t}     contrastive stage on, tau = t            (Table IV; align-tau{base}: the base)
    noalign-tau{t}   contrastive stage off, tau = t, the encoder  (Table IV)
                     trained by the caption stage
    mlp              base with the FFN mapper                 (Table V; its transformer is the base)
    space-only       base without temporal attention          (beyond the paper)
    tokens           base, mapper reading all video tokens    (beyond the paper)
    shuffled         base, frames in a fixed random order     (beyond the paper: does order matter?)

Budget: every cell runs the same optimiser steps. A cell without the align stage gets the align
stage's steps added to its caption stage (`no_align_budget="total"`, the default: the same
number of optimiser steps in all, so the contrastive stage must earn its steps); "caption" keeps
the caption stage as it is instead (the paper's reading, which gives the align cells more steps).

Each cell x seed trains into DIR/<cell>/seed-<k>/ with `train.seed=k`, is scored on the test split
(greedy, the best-on-validation weights), and leaves its scores there. A rerun skips cell-seeds
whose scores-test.json exists, evaluates those whose training finished, resumes those with a
checkpoint, and starts the others afresh. `jobs > 1` runs cell-seeds in spawned processes, each
with max(1, cores // jobs) torch threads.

The package: `grid` (the cells), `runner` (training and scoring cell-seeds, in processes),
`machine` (what ran them), `results` (reading them back, statistics), `report` (table.md).
"""
