from mailport.cli.main import main

main()
