python$target:::function-entry
{
	trace(vtimestamp);
}
