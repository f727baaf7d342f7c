from product_importer.cli import main

main()
