pid$target::clock_nanosleep:4 { }
