from vidcap.cli import main

raise SystemExit(main())
