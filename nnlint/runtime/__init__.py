"""Commands that run user models with torch (imported only here)."""
