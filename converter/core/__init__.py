"""The core: errors, the variant registry, the model and what is measured on it."""
