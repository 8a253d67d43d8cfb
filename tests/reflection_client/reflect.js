// A third-party gRPC client (Node.js, @grpc/grpc-js) that knows threadctl only
// through server reflection: lists the services, fetches the descriptors of
// threadctl.v1.ThreadControl, and calls ListThreads with messages built from
// them. Reflection needs no credentials; the call sends the owner's token
// (read from the 0600 file beside the socket) as a bearer token.
// Prints one JSON line: {"services": [...], "threads": [...names]}.
// Usage: node reflect.js /path/to/socket /path/to/token
"use strict";
const fs = require("node:fs");
const grpc = require("@grpc/grpc-js");
const { Client } = require("grpc-reflection-js");

async function main() {
  const target = `unix://${process.argv[2]}`;
  const credentials = grpc.credentials.createInsecure();
  const reflection = new Client(target, credentials);
  const services = await reflection.listServices();
  const root = await reflection.fileContainingSymbol("threadctl.v1.ThreadControl");
  const request = root.lookupType("threadctl.v1.ListThreadsRequest");
  const response = root.lookupType("threadctl.v1.ListThreadsResponse");
  const client = new grpc.Client(target, credentials);
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${fs.readFileSync(process.argv[3], "utf8").trim()}`);
  const listing = await new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      "/threadctl.v1.ThreadControl/ListThreads",
      (message) => Buffer.from(request.encode(request.create(message)).finish()),
      (bytes) => response.toObject(response.decode(bytes), { longs: String }),
      {},
      metadata,
      { deadline: Date.now() + 10000 },
      (error, value) => (error ? reject(error) : resolve(value)),
    );
  });
  console.log(JSON.stringify({ services, threads: listing.threads.map((t) => t.name) }));
  client.close();
}

main().catch((error) => {
  console.error(`reflect.js: ${error.message || error}`);
  process.exit(1);
});
