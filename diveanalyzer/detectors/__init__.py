"""One detector per file: audio splash, water motion, person (takeoff), zone estimation."""
