"""The engine: training loop, checkpoints, batched prediction on views, the teacher cache,
evaluation, captum attributions, and the two pipelines (train a teacher, distil a student)."""
