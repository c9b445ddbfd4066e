// The demo's app: an Express server, so the build installs a real dependency tree with yarn.
const express = require('express');
const app = express();
const port = process.env.PORT || 8080;
app.get('/', (req, res) => res.send(`Hello from Node.js ${process.version}, built by strata\n`));
app.listen(port, () => console.log(`listening on ${port}`));
