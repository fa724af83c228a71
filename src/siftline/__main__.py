from siftline.cli import main

main()
