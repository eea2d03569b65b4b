"""Reporting: figures of one run (run_figures), its gradient flow read back from its
logged per-layer statistics (gradient_flow) and the range test's figure (lr_range); a
sweep's comparison report: its runs read back (collect), its figures (figures; learning
curves in curves, their panels, titles and y ranges in panels), its tables and diagnoses
(summary), each run's diagnosis from training itself read from what it logged
(training_diagnosis), its seeds as replicates with their means and confidence intervals
(groups) and its groups compared paired by seed (compare), the summary the sweep ends on
(overview); the depth study's figures (depth), a search's history and best configuration
(search), and the learning curve of a sweep over sizes, fitted with bootstrap intervals
(learning_curve) and shown (learning_curve_report); results tables with intervals and
provenance rebuilt from logged sweeps (results); the sharpness of a stability sweep
against its threshold 2/lr (stability); a batch-size sweep's gradient noise scale beside
its steps to a target accuracy (noise_scale)."""
