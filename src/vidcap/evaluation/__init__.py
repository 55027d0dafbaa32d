"""Evaluation: coco-caption scores (`score`, on the scorers of `metrics` and the Java tools of
`java`), prediction and reference files (`formats`), evaluating a run (`evaluate`), and the Shapes
analyses (`shapes`). Import from the submodules: this package's own import stays light."""
