from quvel.cli import main

raise SystemExit(main())
