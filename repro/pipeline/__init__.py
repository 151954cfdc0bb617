"""What every reproduction shares: profiles, the stage clock and stage reuse, export, evaluation, the SFT policy."""
