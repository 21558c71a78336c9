"""Workers: claim jobs from Redis, run them in warm containers, publish the results."""
