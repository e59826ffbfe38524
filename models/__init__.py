"""Model code: the multi-task encoder, its label maps, and the shipped fine-tuned artifact."""
