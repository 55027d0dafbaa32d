"""The run directory: what `vidcap train` writes and every other command reads.

`layout` names every file and checks that a folder is a run; `store` writes and reads the config
and the model (`load_run`); `checkpoints` keeps the training checkpoints; `records` the metrics
log and curves. Import from the submodules: this package's own import stays light.
"""
