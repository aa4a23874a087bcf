"""Running a study: the runner (study), one run folder (run), notebooks executed by papermill (notebooks), leave-one-group-out (holdout)."""
