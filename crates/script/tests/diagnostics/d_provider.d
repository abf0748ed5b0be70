ruby$target:::method-entry
{
	trace(1);
}
