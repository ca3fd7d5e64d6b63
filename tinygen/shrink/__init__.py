"""Shrinking a Keras model to a board's budget: thinner widths (width), filters pruned
(width.prune_filters), weights pruned (distill.magnitude_prune), fine-tuned by distillation,
int8 by PTQ or QAT; one recipe (recipe) or a search over many (search)."""
