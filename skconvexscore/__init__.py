"""skconvexscore."""
