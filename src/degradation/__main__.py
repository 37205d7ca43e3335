from degradation.train import main

main()
