"""QwenLong-L1: warm-up SFT, then curriculum-guided phased RL with a hybrid reward."""
