// The shared egress cases (egress.cases.ts) on the route: proxy.
import { egressCases } from "./egress.cases.ts";

egressCases("proxy");
