from degradation.cli import main

main()
