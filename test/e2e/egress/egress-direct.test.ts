// The shared egress cases (egress.cases.ts) on the route: direct.
import { egressCases } from "./egress.cases.ts";

egressCases("direct");
