"""zobench's optimizers inside other people's training code (:mod:`.transformers`: a Hugging Face
``Trainer``). Nothing here is imported by ``import zobench``: each integration pulls in its framework."""
