"""Applications: programs that arrange library calls for one job (the demo, the ablation grid,
the web server). The logic they need lives in the library; only the CLI sits above them."""
