"""Lightning training: supervised teacher training and teacher-student distillation."""
