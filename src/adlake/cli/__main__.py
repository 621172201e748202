from adlake.cli import main

main()
