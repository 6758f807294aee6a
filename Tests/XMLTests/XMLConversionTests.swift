import Testing
import XML

