from st_app.cli import main

raise SystemExit(main())
